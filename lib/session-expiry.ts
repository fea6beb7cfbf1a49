// Sessions that end when their token does (docs/server-api.md#session-expiry): connections whose `authenticate`
// returned `{ user, expiresAt }`, in a min-heap by expiry, with one timer per node armed for the
// earliest. Each connection knows its place in the heap, so one that closes first leaves it at once
// (a closed connection is never kept alive until its token would have expired).
export interface Expiring {
  readonly expiresAt: number | undefined
  /** Index in the heap; -1 when not in it. */
  expiryIndex: number
}

/** setTimeout's longest delay; a later expiry is re-armed when it fires. */
const MAX_DELAY = 2 ** 31 - 1

export class SessionExpiry<C extends Expiring> {
  private readonly heap: C[] = []
  private timer: NodeJS.Timeout | undefined
  private armedFor = Infinity
  private readonly expire: (conn: C) => void
  private stopped = false

  constructor (expire: (conn: C) => void) {
    this.expire = expire
  }

  add (conn: C): void {
    if (this.stopped || conn.expiresAt === undefined || conn.expiryIndex >= 0) return
    conn.expiryIndex = this.heap.length
    this.heap.push(conn)
    this.up(conn.expiryIndex)
    if (conn.expiresAt < this.armedFor) this.arm()
  }

  delete (conn: C): void {
    const i = conn.expiryIndex
    if (i < 0) return
    conn.expiryIndex = -1
    const last = this.heap.pop()!
    if (last !== conn) {
      this.heap[i] = last
      last.expiryIndex = i
      this.down(this.up(i))
    }
    if (this.heap.length === 0) this.arm()
  }

  private at (i: number): number {
    return this.heap[i].expiresAt!
  }

  private swap (i: number, j: number): void {
    const heap = this.heap
    ;[heap[i], heap[j]] = [heap[j], heap[i]]
    heap[i].expiryIndex = i
    heap[j].expiryIndex = j
  }

  private up (i: number): number {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.at(parent) <= this.at(i)) break
      this.swap(parent, i)
      i = parent
    }
    return i
  }

  private down (i: number): void {
    const n = this.heap.length
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let smallest = i
      if (l < n && this.at(l) < this.at(smallest)) smallest = l
      if (r < n && this.at(r) < this.at(smallest)) smallest = r
      if (smallest === i) return
      this.swap(smallest, i)
      i = smallest
    }
  }

  private arm (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.armedFor = Infinity
    if (this.stopped || this.heap.length === 0) return
    const at = this.at(0)
    this.armedFor = at
    this.timer = setTimeout(() => this.sweep(), Math.min(MAX_DELAY, Math.max(0, at - Date.now())))
    this.timer.unref()
  }

  private sweep (): void {
    const now = Date.now()
    while (this.heap.length > 0 && this.at(0) <= now) {
      const conn = this.heap[0]
      this.delete(conn)
      this.expire(conn)
    }
    this.arm()
  }

  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
    this.timer = undefined
    for (const conn of this.heap) conn.expiryIndex = -1
    this.heap.length = 0
  }
}
