// key.pem + cert.pem for the secure example: read from a folder, or, on first run, a self-signed
// certificate for localhost made with the openssl CLI (node:crypto cannot issue certificates).
// Browsers will warn about a self-signed certificate; in production use one from a CA.
import { execFile } from 'node:child_process'
import { chmod, mkdir, readFile, rename, rm } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface Certificate {
  key: Buffer
  cert: Buffer
  /** True when this call created the files. */
  generated: boolean
  keyPath: string
  certPath: string
}

async function hasOpenssl (): Promise<boolean> {
  try {
    await run('which', ['openssl'])
    return true
  } catch {
    return false
  }
}

export async function loadOrCreateCertificate (dir: string): Promise<Certificate> {
  const keyPath = join(dir, 'key.pem')
  const certPath = join(dir, 'cert.pem')
  const haveKey = existsSync(keyPath)
  const haveCert = existsSync(certPath)
  if (haveKey && haveCert) {
    return { key: await readFile(keyPath), cert: await readFile(certPath), generated: false, keyPath, certPath }
  }
  if (haveKey !== haveCert) {
    // Never overwrite half of someone's key pair.
    throw new Error(`found only ${haveKey ? 'key.pem' : 'cert.pem'} in ${dir}: provide both key.pem and cert.pem, or remove it to generate a self-signed pair`)
  }
  if (!(await hasOpenssl())) {
    throw new Error(`no key.pem/cert.pem in ${dir} and openssl is not installed to generate them; ` +
      'create them with: openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 30 -keyout key.pem -out cert.pem')
  }

  await mkdir(dir, { recursive: true })
  // Written under temporary names and renamed, so an interrupted run leaves no half pair behind.
  const suffix = `.${process.pid}.tmp`
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '30',
      // Clients match the host against subjectAltName, not CN: cover the loopback names.
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      '-keyout', keyPath + suffix, '-out', certPath + suffix
    ])
    await chmod(keyPath + suffix, 0o600)
    await rename(keyPath + suffix, keyPath)
    await rename(certPath + suffix, certPath)
  } catch (err) {
    await rm(keyPath + suffix, { force: true })
    await rm(certPath + suffix, { force: true })
    throw new Error(`could not generate a self-signed certificate in ${dir}: ${(err as Error).message}`, { cause: err })
  }
  return { key: await readFile(keyPath), cert: await readFile(certPath), generated: true, keyPath, certPath }
}
