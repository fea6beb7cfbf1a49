// Room names: 1..N UTF-16 code units, no C0/C1 control characters. A lone surrogate
// is allowed (the Redis adapter escapes it in its key and channel names).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/

export function isValidRoomName (room: string, maxLength: number): boolean {
  return room.length > 0 && room.length <= maxLength && !CONTROL_CHARACTER.test(room)
}
