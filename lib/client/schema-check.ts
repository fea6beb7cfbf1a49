// A small JSON Schema checker for the client: the keywords TypeBox's common types produce (both
// lines write plain JSON Schema). It interprets the schema instead of compiling it, so it runs in a
// page whose Content-Security-Policy forbids 'unsafe-eval' (TypeBox's compilers use new Function),
// and it adds no dependency to the browser bundle. Keywords it does not know are not checked.

type Schema = Record<string, unknown>

function typeOk (type: unknown, value: unknown): boolean {
  switch (type) {
    case 'string': return typeof value === 'string'
    case 'number': return typeof value === 'number' && Number.isFinite(value)
    case 'integer': return Number.isInteger(value)
    case 'boolean': return typeof value === 'boolean'
    case 'null': return value === null
    case 'array': return Array.isArray(value)
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value)
    default: return true
  }
}

function equal (a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && a !== null && JSON.stringify(a) === JSON.stringify(b))
}

/** The first way `value` fails `schema`, as "<path> <why>", or undefined when it passes. */
export function firstSchemaError (schema: unknown, value: unknown, path = ''): string | undefined {
  if (schema === null || typeof schema !== 'object') return undefined
  const s = schema as Schema
  const at = path === '' ? '/' : path
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type]
    if (!types.some((type) => typeOk(type, value))) return `${at} expected ${types.join(' or ')}`
  }
  if ('const' in s && !equal(s.const, value)) return `${at} expected ${JSON.stringify(s.const)}`
  if (Array.isArray(s.enum) && !s.enum.some((option) => equal(option, value))) return `${at} expected one of ${JSON.stringify(s.enum)}`
  if (Array.isArray(s.anyOf) && !s.anyOf.some((option) => firstSchemaError(option, value, path) === undefined)) return `${at} matches none of its alternatives`
  if (Array.isArray(s.oneOf) && !s.oneOf.some((option) => firstSchemaError(option, value, path) === undefined)) return `${at} matches none of its alternatives`
  if (Array.isArray(s.allOf)) {
    for (const part of s.allOf) {
      const error = firstSchemaError(part, value, path)
      if (error !== undefined) return error
    }
  }
  if (s.not !== undefined && firstSchemaError(s.not, value, path) === undefined) return `${at} matches a schema it must not`
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && [...value].length < s.minLength) return `${at} shorter than ${s.minLength}`
    if (typeof s.maxLength === 'number' && [...value].length > s.maxLength) return `${at} longer than ${s.maxLength}`
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) return `${at} does not match ${s.pattern}`
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) return `${at} less than ${s.minimum}`
    if (typeof s.maximum === 'number' && value > s.maximum) return `${at} greater than ${s.maximum}`
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) return `${at} not greater than ${s.exclusiveMinimum}`
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) return `${at} not less than ${s.exclusiveMaximum}`
    if (typeof s.multipleOf === 'number' && !Number.isInteger(value / s.multipleOf)) return `${at} not a multiple of ${s.multipleOf}`
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) return `${at} fewer than ${s.minItems} items`
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) return `${at} more than ${s.maxItems} items`
    if (s.items !== null && typeof s.items === 'object' && !Array.isArray(s.items)) {
      for (let i = 0; i < value.length; i++) {
        const error = firstSchemaError(s.items, value[i], `${path}/${i}`)
        if (error !== undefined) return error
      }
    }
  }
  if (typeOk('object', value)) return objectError(s, value as Record<string, unknown>, path)
  return undefined
}

function objectError (s: Schema, value: Record<string, unknown>, path: string): string | undefined {
  const properties = (s.properties !== null && typeof s.properties === 'object' ? s.properties : {}) as Record<string, unknown>
  if (Array.isArray(s.required)) {
    for (const key of s.required) {
      if (typeof key === 'string' && !Object.hasOwn(value, key)) return `${path}/${key} is required`
    }
  }
  for (const key of Object.keys(properties)) {
    if (!Object.hasOwn(value, key)) continue
    const error = firstSchemaError(properties[key], value[key], `${path}/${key}`)
    if (error !== undefined) return error
  }
  if (s.additionalProperties !== undefined && s.additionalProperties !== true) {
    for (const key of Object.keys(value)) {
      if (Object.hasOwn(properties, key)) continue
      if (s.additionalProperties === false) return `${path}/${key} is not an allowed property`
      const error = firstSchemaError(s.additionalProperties, value[key], `${path}/${key}`)
      if (error !== undefined) return error
    }
  }
  return undefined
}
