// SPDX-License-Identifier: MIT
pragma solidity ^0.8.19;

/// @notice A minimal Chainlink AggregatorV3Interface feed for tests: the owner pushes
/// answers; each push opens a new round stamped with the block time (or a given time).
contract TestAggregatorV3 {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
        uint80 answeredInRound;
    }

    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;
    address public immutable owner;
    uint80 public latestRound;
    mapping(uint80 => Round) private rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        _push(initialAnswer, block.timestamp);
    }

    function updateAnswer(int256 answer) external {
        require(msg.sender == owner, "not owner");
        _push(answer, block.timestamp);
    }

    /// @dev a round stamped in the past (a feed that stopped updating)
    function updateRoundData(int256 answer, uint256 updatedAt) external {
        require(msg.sender == owner, "not owner");
        require(updatedAt <= block.timestamp, "future");
        _push(answer, updatedAt);
    }

    /// @dev a raw round as a broken or lagging aggregator may report it (updatedAt 0: not
    /// complete; answeredInRound below the round id: carried over from an older round)
    function pushRawRound(int256 answer, uint256 updatedAt, uint80 answeredInRound) external {
        require(msg.sender == owner, "not owner");
        latestRound += 1;
        rounds[latestRound] = Round(answer, updatedAt, updatedAt, answeredInRound);
        emit AnswerUpdated(answer, latestRound, updatedAt);
    }

    function _push(int256 answer, uint256 at) private {
        latestRound += 1;
        rounds[latestRound] = Round(answer, at, at, latestRound);
        emit AnswerUpdated(answer, latestRound, at);
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256, uint256, uint256, uint80)
    {
        Round memory r = rounds[roundId];
        require(r.updatedAt != 0, "No data present");
        return (roundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound);
    }

    /// @dev like an OCR aggregator, the latest round is returned as stored, never reverted
    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        Round memory r = rounds[latestRound];
        return (latestRound, r.answer, r.startedAt, r.updatedAt, r.answeredInRound);
    }
}
