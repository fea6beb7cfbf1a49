// TypeBox ships two builds with two sets of declarations (ESM `.d.mts` for `import`, CommonJS
// `.d.ts` for `require`), and their `Kind` symbols are distinct types: a schema built with the
// CommonJS `Type` is not assignable to the ESM `TObject` and the reverse. The public types take a
// schema from either build, so `rooms.handle` (and the client's `RequestFor`) type-check whether
// the user's file is ESM or CommonJS. Internal helper: not re-exported by the entry points.
import type { TObject as TObjectEsm } from '@sinclair/typebox' with { 'resolution-mode': 'import' }
import type { TObject as TObjectCjs } from '@sinclair/typebox' with { 'resolution-mode': 'require' }

/** A TypeBox object schema (`Type.Object(...)`) from TypeBox's ESM or CommonJS build. */
export type ObjectSchema = TObjectEsm | TObjectCjs

/** What TypeBox's `Static<S>` gives, for a schema of either build. */
export type StaticObject<S extends ObjectSchema> = (S & { params: [] })['static']
