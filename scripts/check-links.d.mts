// Types of check-links.mjs, for the TypeScript tests that import it.
export interface RelativeLink { file: string, line: number, target: string, resolved: string, fragment: string | undefined }
export function markdownFiles (root: string): string[]
export function anchorsOf (text: string): Set<string>
export function relativeLinks (root: string, file: string): RelativeLink[]
export function danglingLinks (root: string, files?: string[]): string[]
