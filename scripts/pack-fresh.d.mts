// Types of pack-fresh.mjs, for the TypeScript tests that import it.
export interface Packed {
  /** Absolute path of the .tgz. */
  tarball: string
  filename: string
  /** The paths inside the tarball, relative to the package root. */
  files: string[]
  /** The clean copy that was packed. */
  stage: string
  /** How dist/ came to be in the tarball. */
  built: string
}
export function cloneFiles (repo: string): string[]
export function exportedFiles (dir: string): string[]
export function distIsFresh (repo: string): boolean
export function packFresh (repo: string, work: string, options?: { reuseFreshDist?: boolean }): Packed
export function run (cmd: string, args: string[], cwd: string, what: string, env?: Record<string, string>): string
