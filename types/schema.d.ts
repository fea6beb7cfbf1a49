// The object schemas the package takes (`fastify.rooms.handle`, the client's `RequestFor`), from
// either TypeBox line: `@sinclair/typebox` 0.34 or `typebox` 1.x (the line
// `@fastify/type-provider-typebox` 6 uses). What a schema accepts is typed by the `Static` of the
// line it came from. No fastify, Node or DOM types here: the client's types use this file too.
import type * as TypeBox034 from '@sinclair/typebox'
// typebox 1.x is an optional peer dependency. In a program without it this import resolves to
// nothing (every type read from it is `any`), which `TObjectNext` below turns into `never`: such a
// program takes 0.34 schemas only, exactly as before, instead of taking anything.
// @ts-ignore: the module is absent when typebox 1.x is not installed
import type * as TypeBoxNext from 'typebox'

type IsAny<T> = 0 extends 1 & T ? true : false
// Only what is marked `export` is exported (a declaration file exports everything otherwise).
export {}

/** An object schema of `@sinclair/typebox` 0.34 (`Type.Object` from '@sinclair/typebox'). */
export type TObject034 = TypeBox034.TObject

/**
 * An object schema of `typebox` 1.x (`Type.Object` from 'typebox'); `never` when typebox 1.x is not
 * installed (then the type is `any`, whose keys are every string; a conditional type on `any`
 * itself would give both branches).
 */
export type TObjectNext = string extends keyof TypeBoxNext.TObject ? never : TypeBoxNext.TObject

/** An object schema (`Type.Object(...)`) from `@sinclair/typebox` 0.34 or `typebox` 1.x. */
export type ObjectSchema = TObject034 | TObjectNext

/**
 * The type of the values an object schema of either line accepts: that line's `Static` of an
 * object with the schema's properties. A schema whose properties are not known (`any`, or the wide
 * `TObject` itself) gives `any` or `Record<string, unknown>`: typebox 1.x's `Static` never ends on
 * those. The properties are inferred rather than the schema used as is, so that TypeScript, when it
 * compares generic signatures (a class implementing `RoomsApi`), does not walk 0.34's `Static`
 * over the 1.x half of `ObjectSchema` without end.
 */
export type StaticOf<S> = IsAny<S> extends true
  ? any
  : S extends TypeBox034.TObject<infer Properties>
    ? TypeBox034.Static<TypeBox034.TObject<Properties>>
    : S extends TypeBoxNext.TObject<infer Properties>
      ? string extends keyof Properties ? Record<string, unknown> : TypeBoxNext.Static<TypeBoxNext.TObject<Properties>>
      : never
