import http from 'node:http';

export interface SseEvent {
  event?: string;
  id?: string;
  data: string;
  retry?: number;
  comment?: boolean;
}

/** Parses SSE blocks the way the spec does (fields per line, a blank line ends a block). */
export function parseSse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split(/\r\n\r\n|\n\n|\r\r/)) {
    if (!block) continue;
    const ev: SseEvent = { data: '' };
    const data: string[] = [];
    for (const line of block.split(/\r\n|\n|\r/)) {
      if (line.startsWith(':')) ev.comment = true;
      const i = line.indexOf(':');
      const field = i === -1 ? line : line.slice(0, i);
      const value = i === -1 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (field === 'data') data.push(value);
      else if (field === 'event') ev.event = value;
      else if (field === 'id') ev.id = value;
      else if (field === 'retry') ev.retry = Number(value);
    }
    ev.data = data.join('\n');
    out.push(ev);
  }
  return out;
}

/** A raw HTTP SSE client: everything received is kept, parsed on demand. */
export function openRawStream(url: string, headers: Record<string, string> = {}) {
  let text = '';
  let ended = false;
  let endedCleanly = false; // the server ended the response (the final chunk arrived), not a reset or abort
  let res: http.IncomingMessage | undefined;
  const req = http.get(url, { headers: { Accept: 'text/event-stream', ...headers }, agent: false });
  const ready = new Promise<http.IncomingMessage>((resolve, reject) => {
    req.on('response', (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (chunk: string) => (text += chunk));
      r.on('end', () => (ended = endedCleanly = true));
      r.on('close', () => (ended = true));
      r.on('error', () => (ended = true));
      resolve(r);
    });
    req.on('error', reject);
  });
  return {
    ready,
    get text() {
      return text;
    },
    get ended() {
      return ended;
    },
    get endedCleanly() {
      return endedCleanly;
    },
    get response() {
      return res;
    },
    events: () => parseSse(text).filter((e) => e.event === 'scoreboard'),
    blocks: () => parseSse(text),
    close() {
      req.destroy();
    },
  };
}
