import autocannon from 'autocannon';

export interface TimedWrites {
  /** Date.now() when each write's 201 arrived (just after its commit), by actionId. */
  answered: Map<string, number>;
  errors: number;
  durationS: number;
}

/**
 * POSTs like the writes scenario's (autocannon, so the load generator stays cheap beside the probe in this
 * process), but keeping the moment each write was answered, which autocannon's summary does not: the relay's
 * lag is measured from there. With `rate` the connections share that pace; without it, full speed.
 */
export async function timedWrites(opts: {
  url: string;
  tokens: string[];
  tag: string;
  durationS: number;
  connections: number;
  rate?: number;
}): Promise<TimedWrites> {
  const answered = new Map<string, number>();
  let errors = 0;
  let seq = 0;
  // One request in flight per connection (no pipelining), so each connection's context names its request.
  type Ctx = { actionId?: string };
  const result = await autocannon({
    url: `${opts.url}/api/v1/scores/update`,
    connections: opts.connections,
    duration: opts.durationS,
    overallRate: opts.rate,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        setupRequest: (req, context) => {
          const actionId = `${opts.tag}-${seq++}`;
          (context as Ctx).actionId = actionId;
          const token = opts.tokens[Math.floor(Math.random() * opts.tokens.length)];
          return {
            ...req,
            headers: { 'content-type': 'application/json', authorization: token },
            body: `{"scoreIncrement":1,"actionId":"${actionId}"}`,
          };
        },
        onResponse: (status, _body, context) => {
          if (status === 201) answered.set((context as Ctx).actionId!, Date.now());
          else errors++;
        },
      },
    ],
  });
  return { answered, errors: errors + result.errors, durationS: result.duration };
}
