// The adapter contract suite (adapter-contract/suite.ts) against the memory backend.
import t from 'tap'
import { adapterContract } from './adapter-contract/suite.js'
import { memory } from './adapter-contract/backends.js'

await adapterContract(t, memory)
