// The chat example's message store: one SQLite table through better-sqlite3 (synchronous,
// prepared once). `:memory:` gives a throwaway store for tests.
import Database from 'better-sqlite3'

export interface NewChatMessage {
  room: string
  /** The author's user id. */
  user: string
  /** The author's display name when the message was written. */
  name: string
  text: string
}

export interface ChatMessage extends NewChatMessage {
  id: number
  /** When the server stored it: ISO 8601, UTC, millisecond precision, set by the database. */
  createdAt: string
}

export interface HistoryQuery {
  /** At most this many messages (the newest ones). */
  limit: number
  /** Only messages older than this message id (to page back through history). */
  before?: number
}

export interface ChatStore {
  save (message: NewChatMessage): ChatMessage
  /** The newest `limit` messages of `room` (older than `before` if given), oldest first. */
  history (room: string, query: HistoryQuery): ChatMessage[]
  close (): void
}

// Rows written before names existed have none: their author's id stands in.
const COLUMNS = 'id, room, user, COALESCE(name, user) AS name, text, created_at AS createdAt'

export function openChatStore (filename: string): ChatStore {
  const db = new Database(filename)
  try {
    if (filename !== ':memory:') db.pragma('journal_mode = WAL')
    db.exec(`
      CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room TEXT NOT NULL,
        user TEXT NOT NULL,
        name TEXT,
        text TEXT NOT NULL,
        created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
      );
      CREATE INDEX IF NOT EXISTS messages_room_id ON messages (room, id);
    `)
    // A chat.db from before display names: add the column, keep every row. In a write transaction,
    // as the nodes of the cluster example may open one file at the same moment.
    db.transaction(() => {
      const columns = db.prepare<[], { name: string }>('PRAGMA table_info(messages)').all()
      if (!columns.some((c) => c.name === 'name')) db.exec('ALTER TABLE messages ADD COLUMN name TEXT')
    }).immediate()
  } catch (err) {
    db.close()
    throw err
  }

  const insert = db.prepare<[string, string, string, string], ChatMessage>(
    `INSERT INTO messages (room, user, name, text) VALUES (?, ?, ?, ?) RETURNING ${COLUMNS}`
  )
  // Newest first with the (room, id) index, then turned around so the page reads top to bottom.
  const newest = db.prepare<[string, number, number], ChatMessage>(
    `SELECT ${COLUMNS} FROM messages WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?`
  )

  return {
    save ({ room, user, name, text }) {
      const row = insert.get(room, user, name, text)
      if (row === undefined) throw new Error('INSERT … RETURNING gave no row')
      return row
    },
    history (room, { limit, before }) {
      return newest.all(room, before ?? Number.MAX_SAFE_INTEGER, limit).reverse()
    },
    close () {
      if (db.open) db.close()
    }
  }
}
