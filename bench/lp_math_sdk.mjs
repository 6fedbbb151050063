// Reference side of bench/lp_math.py: the same inputs through @uniswap/v3-sdk (JSBI).
//
// stdin : {"ticks": [int], "sqrts": ["dec"], "positions": [["sqrt", tick, lower, upper, "L"]],
//          "repeat": int}
// stdout: {"results": {...}, "seconds": {...}, "sdk_version": "..."}
//
// Timings are measured here (process.hrtime), after one warm-up pass, best of `repeat`
// passes; parsing JSON/strings into JSBI and serialising results are outside the timed region.
import { createRequire } from 'node:module'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const sdk = require('@uniswap/v3-sdk')
const core = require('@uniswap/sdk-core')
const jsbiModule = require('jsbi')
const JSBI = jsbiModule.default ?? jsbiModule
const { TickMath, SqrtPriceMath, Pool, Position, FeeAmount } = sdk

const input = JSON.parse(readFileSync(0, 'utf8'))
const repeat = Math.max(1, input.repeat ?? 3)
const ticks = input.ticks
const sqrts = input.sqrts.map((s) => JSBI.BigInt(s))
const positions = input.positions.map(([s, tick, lower, upper, L]) => ({
  sqrt: JSBI.BigInt(s),
  tick,
  lower,
  upper,
  L: JSBI.BigInt(L),
}))

function time(fn) {
  fn() // warm-up (JIT), not timed
  let best = Infinity
  let out
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint()
    out = fn()
    const dt = Number(process.hrtime.bigint() - t0) / 1e9
    if (dt < best) best = dt
  }
  return [best, out]
}

function sqrtAtTick() {
  const out = new Array(ticks.length)
  for (let i = 0; i < ticks.length; i++) out[i] = TickMath.getSqrtRatioAtTick(ticks[i])
  return out
}

function tickAtSqrt() {
  const out = new Array(sqrts.length)
  for (let i = 0; i < sqrts.length; i++) out[i] = TickMath.getTickAtSqrtRatio(sqrts[i])
  return out
}

const ZERO = JSBI.BigInt(0)

// The pool's own branching on the current tick, with the SDK's TickMath and SqrtPriceMath.
function amountsOne(p, roundUp) {
  const sa = TickMath.getSqrtRatioAtTick(p.lower)
  const sb = TickMath.getSqrtRatioAtTick(p.upper)
  if (p.tick < p.lower) return [SqrtPriceMath.getAmount0Delta(sa, sb, p.L, roundUp), ZERO]
  if (p.tick < p.upper)
    return [
      SqrtPriceMath.getAmount0Delta(p.sqrt, sb, p.L, roundUp),
      SqrtPriceMath.getAmount1Delta(sa, p.sqrt, p.L, roundUp),
    ]
  return [ZERO, SqrtPriceMath.getAmount1Delta(sa, sb, p.L, roundUp)]
}

function amountsSqrtPriceMath() {
  const down = new Array(positions.length)
  const up = new Array(positions.length)
  for (let i = 0; i < positions.length; i++) {
    down[i] = amountsOne(positions[i], false)
    up[i] = amountsOne(positions[i], true)
  }
  return [down, up]
}

// Position entity: amount0/amount1 (burn rounding) and mintAmounts (round up).
// Pools are built outside the timed region (one per input: each has its own price).
const token0 = new core.Token(1, '0x0000000000000000000000000000000000000001', 18, 'T0')
const token1 = new core.Token(1, '0x0000000000000000000000000000000000000002', 18, 'T1')
const pools = positions.map(
  (p) => new Pool(token0, token1, FeeAmount.LOWEST, p.sqrt, JSBI.BigInt(0), p.tick),
)

function amountsPosition() {
  const down = new Array(positions.length)
  const up = new Array(positions.length)
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i]
    const pos = new Position({ pool: pools[i], liquidity: p.L, tickLower: p.lower, tickUpper: p.upper })
    down[i] = [pos.amount0.quotient, pos.amount1.quotient]
    const m = pos.mintAmounts
    up[i] = [m.amount0, m.amount1]
  }
  return [down, up]
}

const [tSqrt, rSqrt] = time(sqrtAtTick)
const [tTick, rTick] = time(tickAtSqrt)
const [tAmt, [rDown, rUp]] = time(amountsSqrtPriceMath)
const [tPos, [pDown, pUp]] = time(amountsPosition)

const pair = (a) => a.map(([x, y]) => [x.toString(), y.toString()])
// package.json is not in the package's "exports": find it from the resolved entry point.
let sdkDir = dirname(require.resolve('@uniswap/v3-sdk'))
while (!sdkDir.endsWith('v3-sdk') && dirname(sdkDir) !== sdkDir) sdkDir = dirname(sdkDir)
const version = JSON.parse(readFileSync(join(sdkDir, 'package.json'), 'utf8')).version

process.stdout.write(
  JSON.stringify({
    sdk_version: version,
    seconds: {
      sqrt_at_tick: tSqrt,
      tick_at_sqrt: tTick,
      amounts: tAmt,
      amounts_position: tPos,
    },
    results: {
      sqrt_at_tick: rSqrt.map((x) => x.toString()),
      tick_at_sqrt: rTick,
      amounts_down: pair(rDown),
      amounts_up: pair(rUp),
      position_down: pair(pDown),
      position_up: pair(pUp),
    },
  }),
)
