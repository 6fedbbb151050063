// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

// Math.mulDiv: 512-bit intermediate products (amount x price, sqrtPrice^2) without overflow.
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";

interface IAggregatorV3 {
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80);
    function decimals() external view returns (uint8);
}

interface IERC20Decimals {
    function decimals() external view returns (uint8);
}

interface INonfungiblePositionManager {
    function positions(uint256 tokenId)
        external
        view
        returns (uint96, address, address, address, uint24, int24, int24, uint128, uint256, uint256, uint128, uint128);
}

interface IUniswapV3Factory {
    function getPool(address, address, uint24) external view returns (address);
}

interface IUniswapV3Pool {
    function slot0() external view returns (uint160, int24, uint16, uint16, uint16, uint8, bool);
}

/// @notice lphedge's Zodiac Roles v2 custom condition (ICustomCondition): value bounds a
/// stolen bot key cannot get around, checked against Chainlink-style USD feeds.
///  - SwapRouter.exactInputSingle: amountOutMinimum >= floor(amountIn x pIn / pOut x
///    (10000 - maxSlippageBps) / 10000), in raw units (token and feed decimals applied);
///  - NonfungiblePositionManager.decreaseLiquidity: the position's pool price
///    (slot0) is within maxDeviationBps of the oracle's price.
/// The bound in bps is the condition's 12-byte `extra` (set by the Roles owner in the
/// scope); feeds, the position manager and the factory are fixed at deployment: no owner,
/// no state to change. Every unknown (no feed, a stale / non-positive / incomplete round,
/// an unknown selector, ether) fails closed with a reason.
contract OracleBoundCondition {
    bytes4 public constant EXACT_INPUT_SINGLE = 0x414bf389;
    bytes4 public constant DECREASE_LIQUIDITY = 0x0c49ccbe;

    address public immutable positionManager;
    address public immutable factory;
    uint256 public immutable maxOracleAge;
    mapping(address => address) public feedOf;

    constructor(address positionManager_, address factory_, uint256 maxOracleAge_, address[] memory tokens, address[] memory feeds) {
        require(tokens.length == feeds.length, "lengths");
        positionManager = positionManager_;
        factory = factory_;
        maxOracleAge = maxOracleAge_;
        for (uint256 i = 0; i < tokens.length; i++) {
            feedOf[tokens[i]] = feeds[i];
        }
    }

    /// @dev USD price of `token` as (answer, 10^(feed decimals + token decimals)): the value
    /// of one raw unit is answer / scale.
    function _price(address token) internal view returns (bool, uint256, uint256, bytes32) {
        address feed = feedOf[token];
        if (feed == address(0)) return (false, 0, 0, "no feed");
        (uint80 roundId, int256 answer,, uint256 updatedAt, uint80 answeredInRound) = IAggregatorV3(feed).latestRoundData();
        if (answer <= 0) return (false, 0, 0, "oracle answer <= 0");
        if (updatedAt == 0 || answeredInRound < roundId) return (false, 0, 0, "oracle round incomplete");
        if (updatedAt > block.timestamp || block.timestamp - updatedAt > maxOracleAge) return (false, 0, 0, "oracle stale");
        uint256 scale = 10 ** (uint256(IAggregatorV3(feed).decimals()) + uint256(IERC20Decimals(token).decimals()));
        return (true, uint256(answer), scale, "");
    }

    /// @notice The smallest amountOutMinimum accepted for a swap (0 with ok=false when unknown).
    function swapFloor(address tokenIn, address tokenOut, uint256 amountIn, uint256 maxSlippageBps)
        public
        view
        returns (bool ok, uint256 floor, bytes32 reason)
    {
        if (maxSlippageBps > 10000) return (false, 0, "slippage bound > 100%");
        (bool okIn, uint256 pIn, uint256 sIn, bytes32 rIn) = _price(tokenIn);
        if (!okIn) return (false, 0, rIn);
        (bool okOut, uint256 pOut, uint256 sOut, bytes32 rOut) = _price(tokenOut);
        if (!okOut) return (false, 0, rOut);
        // amountIn x (pIn / sIn) / (pOut / sOut) x (10000 - bps) / 10000, rounded down once
        floor = Math.mulDiv(amountIn, pIn * sOut * (10000 - maxSlippageBps), sIn * pOut * 10000);
        return (true, floor, "");
    }

    /// @dev the oracle's raw token1 per raw token0, as Q96
    function _oracleX96(address token0, address token1) internal view returns (bool, uint256, bytes32) {
        (bool ok0, uint256 p0, uint256 s0, bytes32 r0) = _price(token0);
        if (!ok0) return (false, 0, r0);
        (bool ok1, uint256 p1, uint256 s1, bytes32 r1) = _price(token1);
        if (!ok1) return (false, 0, r1);
        return (true, Math.mulDiv(p0 * s1, 1 << 96, s0 * p1), "");
    }

    /// @notice Whether the pool price is within maxDeviationBps of the oracle's price.
    function poolWithinOracle(address token0, address token1, uint24 fee, uint256 maxDeviationBps)
        public
        view
        returns (bool, bytes32)
    {
        address pool = IUniswapV3Factory(factory).getPool(token0, token1, fee);
        if (pool == address(0)) return (false, "no pool");
        (bool ok, uint256 oracleX96, bytes32 reason) = _oracleX96(token0, token1);
        if (!ok) return (false, reason);
        (uint160 sqrtPriceX96,,,,,,) = IUniswapV3Pool(pool).slot0();
        // raw token1 per raw token0, as Q96
        uint256 poolX96 = Math.mulDiv(uint256(sqrtPriceX96), uint256(sqrtPriceX96), 1 << 96);
        if (Math.mulDiv(poolX96, 10000, 1) > Math.mulDiv(oracleX96, 10000 + maxDeviationBps, 1)) {
            return (false, "pool above oracle");
        }
        if (maxDeviationBps < 10000 && Math.mulDiv(poolX96, 10000, 1) < Math.mulDiv(oracleX96, 10000 - maxDeviationBps, 1)) {
            return (false, "pool below oracle");
        }
        return (true, "");
    }

    /// @notice ICustomCondition (Zodiac Roles v2): called by Roles with the whole calldata.
    function check(address, uint256 value, bytes calldata data, uint8 operation, uint256, uint256, bytes12 extra)
        external
        view
        returns (bool, bytes32)
    {
        if (value != 0) return (false, "ether");
        if (operation != 0) return (false, "delegatecall");
        if (data.length < 4) return (false, "no selector");
        uint256 bps = uint256(uint96(extra));
        bytes4 sel = bytes4(data[:4]);
        if (sel == EXACT_INPUT_SINGLE) {
            if (data.length != 4 + 8 * 32) return (false, "calldata length");
            (address tokenIn, address tokenOut,,,, uint256 amountIn, uint256 amountOutMinimum,) =
                abi.decode(data[4:], (address, address, uint24, address, uint256, uint256, uint256, uint160));
            (bool ok, uint256 floor, bytes32 reason) = swapFloor(tokenIn, tokenOut, amountIn, bps);
            if (!ok) return (false, reason);
            if (amountOutMinimum < floor) return (false, "amountOutMinimum below floor");
            return (true, "");
        }
        if (sel == DECREASE_LIQUIDITY) {
            if (data.length != 4 + 5 * 32) return (false, "calldata length");
            uint256 tokenId = abi.decode(data[4:36], (uint256));
            (,, address token0, address token1, uint24 fee,,,,,,,) = INonfungiblePositionManager(positionManager).positions(tokenId);
            return poolWithinOracle(token0, token1, fee, bps);
        }
        return (false, "unknown selector");
    }
}
