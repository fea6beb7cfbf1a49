// A tiny event emitter that runs in browsers and Node alike (no 'node:events').
// A listener that throws does not stop the others or the client: its error is rethrown on a
// microtask, where the platform reports it the way it reports any uncaught error.
type Listener = (...args: any[]) => void

interface Entry { listener: Listener, once: boolean }

export class Emitter {
  readonly #listeners = new Map<string, Entry[]>()

  on (event: string, listener: Listener, once = false): () => void {
    if (typeof listener !== 'function') throw new TypeError(`listener for "${event}" must be a function`)
    const list = this.#listeners.get(event)
    const entry = { listener, once }
    if (list === undefined) this.#listeners.set(event, [entry])
    else list.push(entry)
    return () => this.#remove(event, (e) => e === entry)
  }

  off (event: string, listener: Listener): void {
    this.#remove(event, (e) => e.listener === listener)
  }

  emit (event: string, ...args: unknown[]): void {
    const list = this.#listeners.get(event)
    if (list === undefined) return
    for (const entry of [...list]) {
      if (entry.once) this.#remove(event, (e) => e === entry)
      try {
        entry.listener(...args)
      } catch (err) {
        queueMicrotask(() => { throw err })
      }
    }
  }

  #remove (event: string, match: (e: Entry) => boolean): void {
    const list = this.#listeners.get(event)
    if (list === undefined) return
    const i = list.findIndex(match)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.#listeners.delete(event)
  }
}
