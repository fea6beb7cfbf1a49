// The adapter contract suite (adapter-contract/suite.ts) against the redis backend.
import t from 'tap'
import { adapterContract } from './adapter-contract/suite.js'
import { redis } from './adapter-contract/backends.js'

await adapterContract(t, redis)
