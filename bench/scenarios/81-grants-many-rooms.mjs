// What grants cost per message in many small rooms: 100 rooms × 10, grants vs none (see grants-one-room).
import { grantsScenario } from './80-grants-one-room.mjs'
import manyRooms from './20-many-rooms.mjs'

export default grantsScenario('grants-many-rooms', manyRooms, '100 rooms × 10')
