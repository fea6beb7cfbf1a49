// Dangling links in the docs: every relative link (and image) in README.md, CONTRIBUTING.md,
// SECURITY.md and docs/**/*.md must name a file or folder that exists, and a `#fragment` must name
// a heading (as GitHub makes anchors of headings) or an `id`/`name` anchor of the target page.
// Absolute URLs are not fetched. `node scripts/check-links.mjs [dir]` prints each dangling link
// and exits 1; the README test also runs it on the installed package, where only the shipped
// files exist.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, normalize, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The Markdown files whose links are checked, relative to `root` (those that exist there). */
export function markdownFiles (root) {
  const docs = (dir) => !existsSync(join(root, dir))
    ? []
    : readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? docs(join(dir, entry.name)) : entry.name.endsWith('.md') ? [join(dir, entry.name)] : [])
  return [...['README.md', 'CONTRIBUTING.md', 'SECURITY.md'].filter((file) => existsSync(join(root, file))), ...docs('docs')]
}

/** The text with fenced code blocks and inline code blanked (same line count), so their contents are not read as links. */
function withoutCode (text) {
  return text
    .replace(/^( {0,3})(`{3,}|~{3,})[^\n]*\n[\s\S]*?^ {0,3}\2[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ' '))
    .replace(/(`+)[^`\n]+?\1/g, (span) => ' '.repeat(span.length))
}

/** GitHub's anchor for a heading: its text, lower case, without punctuation, spaces as hyphens. */
function slug (heading) {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .replace(/[`*_~]/g, (c) => (c === '_' ? '_' : '')) // emphasis and code marks (underscores stay)
  return text.trim().toLowerCase().replace(/[^\p{L}\p{N}\p{M} _-]/gu, '').replace(/ /g, '-')
}

/** Every anchor a page offers: its headings' slugs (repeats numbered as GitHub does) and explicit ids. */
export function anchorsOf (text) {
  const anchors = new Set()
  const seen = new Map()
  const plain = text.replace(/^( {0,3})(`{3,}|~{3,})[^\n]*\n[\s\S]*?^ {0,3}\2[^\n]*$/gm, '')
  for (const [, heading] of plain.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(heading)
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    anchors.add(count === 0 ? base : `${base}-${count}`)
  }
  for (const [, id] of plain.matchAll(/<[a-z]+[^>]*\s(?:id|name)="([^"]+)"/g)) anchors.add(id)
  return anchors
}

/** The relative links of `file` (relative to `root`): where each points, its fragment and its line. */
export function relativeLinks (root, file) {
  const text = withoutCode(readFileSync(join(root, file), 'utf8'))
  const links = []
  const patterns = [
    /!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g, // [text](target), ![alt](target)
    /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm, // [label]: target
    /<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"/g // HTML
  ]
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) {
      const target = match[1]
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue // absolute URL, mailto:
      const hash = target.indexOf('#')
      const path = decodeURI(hash === -1 ? target : target.slice(0, hash))
      const fragment = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1))
      const resolved = path === '' ? file : normalize(join(dirname(file), path)).replace(/\/$/, '')
      links.push({ file, line: text.slice(0, match.index).split('\n').length, target, resolved, fragment })
    }
  }
  return links
}

/** Every dangling relative link under `root`, as `file:line: target (why)`; empty when all resolve. */
export function danglingLinks (root, files = markdownFiles(root)) {
  const problems = []
  const anchorCache = new Map()
  for (const file of files) {
    for (const link of relativeLinks(root, file)) {
      const where = `${link.file}:${link.line}: ${link.target}`
      const full = resolve(root, link.resolved)
      if (relative(root, full).startsWith('..')) {
        problems.push(`${where} (points outside ${root})`)
        continue
      }
      if (!existsSync(full)) {
        problems.push(`${where} (no such file: ${link.resolved})`)
        continue
      }
      if (link.fragment === undefined || link.fragment === '') continue
      if (!link.resolved.endsWith('.md') || !statSync(full).isFile()) continue
      if (!anchorCache.has(full)) anchorCache.set(full, anchorsOf(readFileSync(full, 'utf8')))
      if (!anchorCache.get(full).has(link.fragment)) problems.push(`${where} (no heading or anchor "#${link.fragment}" in ${link.resolved})`)
    }
  }
  return problems
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'))
  const files = markdownFiles(root)
  const problems = danglingLinks(root, files)
  for (const problem of problems) console.log(problem)
  console.log(problems.length === 0
    ? `links: every relative link in ${files.length} Markdown files resolves`
    : `links: ${problems.length} dangling`)
  process.exitCode = problems.length === 0 ? 0 : 1
}
