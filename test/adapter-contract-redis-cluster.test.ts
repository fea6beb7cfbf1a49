// The adapter contract suite (adapter-contract/suite.ts) against the redis-cluster backend.
import t from 'tap'
import { adapterContract } from './adapter-contract/suite.js'
import { redisCluster } from './adapter-contract/backends.js'

await adapterContract(t, redisCluster)
