// The `result` schema of a request type given to `fastify.rooms.implement`, compiled once when it
// is registered, by the compiler of the TypeBox line it came from (as handler-schema.ts does for
// payloads): a handler's return value is checked against it before the ack is sent.
import { Kind, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { loadedTypeBoxNext, loadTypeBoxNext, locate, type CompileNext } from './handler-schema.js'

export interface ResultValidator {
  Check (value: unknown): boolean
  /** "<path> <first schema error>", for a value `Check` refused. */
  firstError (value: unknown): string
}

/** A promise while typebox 1.x's compiler is being imported. Throws (or rejects) when the schema cannot be compiled. */
export function compileResultSchema (schema: Record<string | symbol, unknown>): ResultValidator | Promise<ResultValidator> {
  if (Kind in schema) {
    const check = TypeCompiler.Compile(schema as unknown as TSchema)
    return {
      Check: (value) => check.Check(value),
      firstError (value) {
        const first = check.Errors(value).First()
        return first === undefined ? 'is not valid' : `${first.path === '' ? '/' : first.path} ${first.message}`
      }
    }
  }
  const loaded = loadedTypeBoxNext()
  if (loaded !== undefined) return compileNext(loaded, schema)
  return loadTypeBoxNext().then((compile) => compileNext(compile, schema))
}

function compileNext (compile: CompileNext, schema: object): ResultValidator {
  const check = compile(schema)
  return {
    Check: (value) => check.Check(value),
    firstError (value) {
      const first = check.Errors(value)[0]
      if (first === undefined) return 'is not valid'
      const { path, message } = locate(first)
      return `${path === '' ? '/' : path} ${message}`
    }
  }
}
