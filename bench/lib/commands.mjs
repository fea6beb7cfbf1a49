// The child side of bench/lib/procs.mjs's control protocol: answer `{ rid, cmd, args }`
// messages from the parent with `{ rid, ok, data | error }`, and exit when the parent goes.
export function answerCommands (commands, { afterReply } = {}) {
  process.on('message', async (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.rid !== 'number') return
    try {
      const fn = commands[msg.cmd]
      if (fn === undefined) throw new Error(`unknown command ${msg.cmd}`)
      const data = await fn(msg.args ?? {})
      process.send({ rid: msg.rid, ok: true, data })
      afterReply?.(msg.cmd)
    } catch (err) {
      process.send({ rid: msg.rid, ok: false, error: String(err?.stack ?? err) })
    }
  })
  process.on('disconnect', () => process.exit(0))
}
