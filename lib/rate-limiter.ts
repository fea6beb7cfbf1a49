// Fixed-window frame counter. Its state is two numbers on the connection itself: O(1) per
// frame, no allocation, nothing to clean up when the connection goes away.

export interface RateLimitState {
  windowStart: number
  framesInWindow: number
}

export const ALLOW = 0
export const REFUSE = 1
export const CLOSE = 2
export type RateVerdict = typeof ALLOW | typeof REFUSE | typeof CLOSE

/**
 * Count one frame. Up to `max` frames a window are allowed; the ones after are refused
 * (`rate_limited`); past `2 × max`, refused frames included, the connection is closed.
 */
export function countFrame (state: RateLimitState, now: number, max: number, windowMs: number): RateVerdict {
  if (now - state.windowStart >= windowMs) {
    state.windowStart = now
    state.framesInWindow = 0
  }
  const count = ++state.framesInWindow
  if (count <= max) return ALLOW
  return count > 2 * max ? CLOSE : REFUSE
}
