// The in-memory adapter, the default: one node, so there is nobody to publish to, and presence
// is the node's own membership. It is the reference for what a RoomsAdapter has to do.
import type { AdapterNode, RoomMember, RoomsAdapter } from '../../types/index.js'

export function memoryAdapter (): RoomsAdapter {
  let node: AdapterNode | undefined
  return {
    init (n) { node = n },
    publishToRoom () {},
    publishToUser () {},
    publishToAll () {},
    subscribeRoom () {},
    unsubscribeRoom () {},
    subscribeUser () {},
    unsubscribeUser () {},
    addPresence () {},
    removePresence () {},
    members (room: string, limit?: number): RoomMember[] {
      const members = node === undefined ? [] : node.localMembers(room)
      return limit === undefined || members.length <= limit ? members : members.slice(0, limit)
    },
    close () { node = undefined }
  }
}
