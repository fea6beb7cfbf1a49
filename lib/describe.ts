// How a bad option value is shown in an error message: short, and never the whole value (it may
// hold a secret).

/** A short, log-safe description of a bad option value for error messages. */
export function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value)
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`
}
