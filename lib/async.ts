// Small promise helpers shared by the whole plugin. The hot path stays synchronous when nothing on
// it is async: callers test with isPromise and allocate no promise for a plain value.

/** A settled promise to hand back where a caller wants one but nothing waits. */
export const RESOLVED: Promise<void> = Promise.resolve()

/** Whether a value a user callback or an adapter returned is a promise (anything with a `then`). */
export function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return value !== null && typeof value === 'object' && typeof (value as Promise<T>).then === 'function'
}

/** `what` did not answer within `ms` (the call may still complete later). */
export class NoAnswerError extends Error {
  readonly ms: number
  constructor (what: string, ms: number, consequence?: string) {
    super(`no answer from ${what} within ${ms} ms${consequence === undefined ? '' : `; ${consequence}`}`)
    this.name = 'NoAnswerError'
    this.ms = ms
  }
}

const TIMED_OUT = Symbol('timed out')

/** Resolve with `promise`, or reject with a NoAnswerError after `ms` (the promise keeps running). */
export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(resolve, ms, TIMED_OUT)
    timer.unref()
  })
  const result = await Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
  if (result === TIMED_OUT) throw new NoAnswerError(what, ms)
  return result
}

/** Whether `promise` resolved within `ms` (false when it rejected or took longer; it keeps running). */
export async function settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  try {
    await withTimeout(promise, ms, 'the call')
    return true
  } catch {
    return false
  }
}
