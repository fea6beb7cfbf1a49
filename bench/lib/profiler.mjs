// In-process CPU profiling over an exact window (the runner's --profile flag): started and
// stopped over IPC around a measurement, so setup and teardown stay out of the profile.
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'

let session = null

function post (method, params) {
  return new Promise((resolve, reject) => {
    session.post(method, params, (err, result) => (err ? reject(err) : resolve(result)))
  })
}

export async function startProfile ({ intervalMicros = 250 } = {}) {
  if (session !== null) throw new Error('a profile is already running')
  session = new Session()
  session.connect()
  await post('Profiler.enable')
  await post('Profiler.setSamplingInterval', { interval: intervalMicros })
  await post('Profiler.start')
  return {}
}

export async function stopProfile ({ file }) {
  if (session === null) throw new Error('no profile is running')
  const { profile } = await post('Profiler.stop')
  session.disconnect()
  session = null
  writeFileSync(file, JSON.stringify(profile))
  return { file }
}
