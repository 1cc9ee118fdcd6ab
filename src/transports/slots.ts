/**
 * Connection slots shared by every push transport (SSE and WebSocket): one per-instance limit
 * (SSE_MAX_CLIENTS) and one per-client limit (RATE_LIMIT_STREAMS_PER_IP, per IPv4 address or IPv6 network;
 * src/http/rate-limit/client-key.ts), so a party cannot get twice its share by mixing transports.
 */
export function createSlots(options: { maxClients: number; perClient: number }) {
  const perClient = new Map<string, number>();
  let total = 0;
  let closed = false;
  return {
    size: () => total,
    /** False when this instance is at its limit or shutting down: answer 503 instead. */
    hasRoom: () => !closed && total < options.maxClients,
    /** False when this client key already holds its share: answer 429. */
    clientHasRoom: (client: string) => (perClient.get(client) ?? 0) < options.perClient,
    /** Takes a slot; the function it returns gives it back (calling it again does nothing). */
    take(client: string): () => void {
      total++;
      perClient.set(client, (perClient.get(client) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total--;
        const left = (perClient.get(client) ?? 1) - 1;
        if (left > 0) perClient.set(client, left);
        else perClient.delete(client);
      };
    },
    /** No new slots from now on (shutdown). */
    close(): void {
      closed = true;
    },
  };
}

export type Slots = ReturnType<typeof createSlots>;
