// fastify-ws-rooms/client: a typed client for the rooms protocol, for browsers and Node.
// Browsers load this file as a plain ES module (no bundler, no runtime dependency).
import type { AppSpec, ClientAppOf, ConnectOptions, MessageDefinitions, UntypedApp } from '../../types/client.js'
import { RoomsClient } from './client.js'

export { RoomsClient, PROTOCOL } from './client.js'
export { RoomsClientError } from './errors.js'
export { shouldReconnect } from './policy.js'

/**
 * Open a client. It connects at once and returns synchronously; calls made before it is open are
 * queued. In Node `url` must be absolute (ws://host:port/ws); in a page it may be relative.
 */
export function connect<App extends AppSpec = UntypedApp> (url: string | URL, options?: ConnectOptions & { messages?: App & MessageDefinitions }): RoomsClient<ClientAppOf<App>> {
  return new RoomsClient<ClientAppOf<App>>(url, options)
}

export default connect
export { defineMessages } from './messages.js'
