// The schemas given to `fastify.rooms.handle`, from either TypeBox line, each compiled once, when
// the handler is registered, by the compiler of the line it came from:
// - `@sinclair/typebox` 0.34 (a dependency: the built-in frames are checked with it) marks its
//   schemas with its `Kind` symbol, and its TypeCompiler refuses anything without that mark;
// - `typebox` 1.x (an optional peer dependency) builds plain JSON Schema objects, compiled by its
//   own `Compile`. That compiler is imported the first time such a schema is given (importing it
//   takes long enough that nobody who does not use it should pay for it), so its first compile is
//   asynchronous: the plugin waits for it before the server is ready (commands/registry.ts, index.ts).
import { Kind, Type, type TObject, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { MessageIdSchema, schemaErrorText } from './client-frames.js'

/** A compiled handler schema: the check run on every frame of its type, and the text of a refusal. */
export interface FrameValidator {
  Check (value: unknown): boolean
  /** "Invalid message format: <path> <first schema error>", for a value `Check` refused. */
  errorText (value: unknown): string
}

/** The part of a typebox 1.x validator used here (ajv-style errors). */
export interface ValidatorNext {
  Check (value: unknown): boolean
  Errors (value: unknown): Array<{ keyword: string, instancePath: string, schemaPath: string, params: Record<string, unknown>, message: string }>
}
export type CompileNext = (schema: object) => ValidatorNext

let loadingNext: Promise<CompileNext> | undefined
let compileNext: CompileNext | undefined

/** typebox 1.x's compiler once imported, else undefined. */
export function loadedTypeBoxNext (): CompileNext | undefined {
  return compileNext
}

/** typebox 1.x's compiler, imported once per process; rejects with the reason it could not be. */
export function loadTypeBoxNext (): Promise<CompileNext> {
  loadingNext ??= import('typebox/compile').then(
    (module) => {
      compileNext = module.Compile as unknown as CompileNext
      return compileNext
    },
    (err: unknown) => {
      throw new Error(`the schema is not from @sinclair/typebox 0.34, so it needs the compiler of typebox 1.x, which could not be loaded (${(err as Error)?.message ?? String(err)})`)
    }
  )
  return loadingNext
}

/** The message types `handle` registers carry `type` and `id` besides the schema's own fields. */
const ENVELOPE_FIELDS = new Set(['type', 'id'])

/**
 * Compile the schema of `rooms.handle(type, schema)` for frames of `type`: the schema's fields plus
 * `type` (that literal) and an optional `id`. A promise while typebox 1.x's compiler is being
 * imported. Throws (or rejects with) an Error whose message says what is wrong.
 */
export function compileHandlerSchema (type: string, schema: Record<string | symbol, unknown>): FrameValidator | Promise<FrameValidator> {
  if (Kind in schema) return compileTypeBox034(type, schema as unknown as TObject)
  if (compileNext !== undefined) return compileJsonSchema(compileNext, type, schema)
  return loadTypeBoxNext().then((compile) => compileJsonSchema(compile, type, schema))
}

function compileTypeBox034 (type: string, schema: TObject): FrameValidator {
  const { properties, required: _required, type: _type, ...options } = schema
  const envelope = Type.Object({
    ...(properties as Record<string, TSchema>),
    type: Type.Literal(type),
    id: Type.Optional(MessageIdSchema)
  }, options)
  const check = TypeCompiler.Compile(envelope)
  return {
    Check: (value) => check.Check(value),
    errorText: (value) => schemaErrorText(check, value)
  }
}

function compileJsonSchema (compile: CompileNext, type: string, schema: Record<string, unknown>): FrameValidator {
  const { properties, required, ...options } = schema
  const envelope = {
    ...options,
    type: 'object',
    properties: {
      ...(properties as Record<string, unknown>),
      type: { type: 'string', const: type },
      id: { anyOf: [{ type: 'string' }, { type: 'number' }] }
    },
    required: [...(Array.isArray(required) ? required.filter((key) => !ENVELOPE_FIELDS.has(key)) : []), 'type']
  }
  const check = compile(envelope)
  return {
    Check: (value) => check.Check(value),
    errorText (value) {
      const first = check.Errors(value)[0]
      if (first === undefined) return 'Invalid message format'
      const { path, message } = locate(first)
      return `Invalid message format: ${path === '' ? '/' : path} ${message}`
    }
  }
}

/**
 * Where typebox 1.x reports a missing or an unexpected property on the object that holds it, the
 * error is placed on the property itself, as 0.34 does, so both lines name the field.
 */
export function locate (error: ReturnType<ValidatorNext['Errors']>[number]): { path: string, message: string } {
  const missing = error.params.requiredProperties
  if (error.keyword === 'required' && Array.isArray(missing) && typeof missing[0] === 'string') {
    return { path: `${error.instancePath}/${missing[0].replaceAll('~', '~0').replaceAll('/', '~1')}`, message: 'is required' }
  }
  if (error.keyword === 'boolean' && error.schemaPath.endsWith('/additionalProperties')) {
    return { path: error.instancePath, message: 'is not an allowed property' }
  }
  return { path: error.instancePath, message: error.message }
}
