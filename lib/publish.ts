// The cluster-wide send: this node's members first, then the adapter for the other nodes. The hot
// path reads by file: a client's chat arrives in frame-handler.ts (order, rate limit), is checked
// and serialized once in commands/message.ts (the API: serialize.ts), comes here, reaches this
// node's members through hub.deliverToRoom, is framed once into the room's tick batch
// (frame-writer.ts RoomFrame) and leaves in one write per socket per tick (frame-writer.ts flush).
// The adapter carries the same payload string to the other nodes, where the same chain delivers it.
import type { UserCommand } from '../types/index.js'
import { isPromise } from './async.js'
import type { ClusterLink } from './cluster-link.js'
import { unavailableFrom } from './errors.js'
import type { Hub } from './hub.js'
import { splitForOffset } from './serialize.js'

/** Where a history room's message went in the room's order. */
export interface Published {
  epoch: string
  offset: number
}

export class Publisher {
  private readonly hub: Hub
  private readonly link: ClusterLink

  constructor (hub: Hub, link: ClusterLink) {
    this.hub = hub
    this.link = link
  }

  /** Deliver to the room's members here, and hand the payload to the adapter. Never rejects. */
  toRoom (room: string, payload: string, except?: string): Promise<void> | undefined {
    this.hub.deliverToRoom(room, payload, except)
    return this.link.publishToRoom(room, payload, except)
  }

  /**
   * A message to a history room: the history gives it the room's next offset and delivers it to
   * every node (this one included) in that order. Rejects with UnavailableError when it cannot.
   */
  toHistoryRoom (room: string, payload: string, except?: string): Published | Promise<Published> {
    const { head, sep } = splitForOffset(payload)
    let published: Published | Promise<Published>
    try {
      published = this.link.history.publish(room, head, sep, except)
    } catch (err) {
      throw unavailableFrom(err)
    }
    if (!isPromise(published)) return published
    return published.catch((err: unknown) => {
      throw unavailableFrom(err)
    })
  }

  toUser (userId: string, payload: string): Promise<void> | undefined {
    this.hub.deliverToUser(userId, payload)
    return this.link.publishToUser(userId, payload)
  }

  toAll (payload: string): Promise<void> | undefined {
    this.hub.deliverToAll(payload)
    return this.link.publishToAll(payload)
  }

  /** A command for every connection of `userId`: this node's first (awaited), then the other nodes'. */
  async toUserConnections (userId: string, command: UserCommand): Promise<void> {
    await this.hub.applyUserCommand(userId, command)
    await this.link.publishUserCommand(userId, command)
  }
}
