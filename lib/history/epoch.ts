// A history room's epoch: made when the room's history is created (or made again after it was
// lost), so a client holding an old epoch learns that offsets restarted.
import { randomBytes } from 'node:crypto'

export function newEpoch (): string {
  return randomBytes(8).toString('base64url')
}
