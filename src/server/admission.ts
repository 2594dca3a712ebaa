// What one client, and all of them together, may make the server spend at
// once: Git requests in progress per client and in total, and the memory the
// process may use before it stops taking new work. A request over a bound is
// answered 503 with Retry-After at once (RFC 9110 15.6.4), before anything of
// the repository is read, so that the server sheds load instead of running
// out of memory. (Git's own http-backend has no such bounds: a web server in
// front of it is expected to set them.)
import { getHeapStatistics } from 'node:v8';

export interface AdmissionLimits {
  /** Git requests (advertisements, upload-pack, receive-pack, file reads, admin API) in progress at once. */
  maxRequests: number;
  /** The same, for one client (an authenticated user, or an address for anonymous clients). */
  maxRequestsPerClient: number;
  /** Resident memory above which new requests are refused (bytes). */
  maxMemoryBytes: number;
  /** What Retry-After says to a refused client (seconds). */
  retryAfterSeconds: number;
}

/** Half of V8's heap limit: the heap dies at the limit, and buffers outside it count towards RSS too. */
export function defaultMaxMemory(): number {
  return Math.floor(getHeapStatistics().heap_size_limit / 2);
}

export const DEFAULT_ADMISSION_LIMITS: Readonly<Omit<AdmissionLimits, 'maxMemoryBytes'>> = Object.freeze({
  maxRequests: 256,
  maxRequestsPerClient: 64,
  retryAfterSeconds: 5,
});

export type AdmissionRefusal = 'requests' | 'client' | 'memory';

/** A request let in: `leave()` once it is answered (idempotent). */
export interface AdmissionTicket {
  leave(): void;
}

export class Admission {
  readonly limits: AdmissionLimits;
  private inFlight = 0;
  private readonly perClient = new Map<string, number>();
  /** Memory is read at most every 10 ms (process.memoryUsage.rss() reads /proc). */
  private memoryCheckedAt = 0;
  private memoryHigh = false;

  constructor(limits: Partial<AdmissionLimits> = {}, private readonly rss: () => number = () => process.memoryUsage.rss()) {
    this.limits = { ...DEFAULT_ADMISSION_LIMITS, maxMemoryBytes: defaultMaxMemory(), ...limits };
  }

  /** Requests in progress. */
  get active(): number {
    return this.inFlight;
  }

  /** Lets a request of `client` in, or says why not. */
  enter(client: string): AdmissionTicket | AdmissionRefusal {
    if (this.inFlight >= this.limits.maxRequests) return 'requests';
    const mine = this.perClient.get(client) ?? 0;
    if (mine >= this.limits.maxRequestsPerClient) return 'client';
    if (this.memoryTooHigh()) return 'memory';
    this.inFlight++;
    this.perClient.set(client, mine + 1);
    let left = false;
    return {
      leave: () => {
        if (left) return;
        left = true;
        this.inFlight--;
        const n = (this.perClient.get(client) ?? 1) - 1;
        if (n <= 0) this.perClient.delete(client);
        else this.perClient.set(client, n);
      },
    };
  }

  private memoryTooHigh(): boolean {
    const now = Date.now();
    if (now - this.memoryCheckedAt >= 10) {
      this.memoryCheckedAt = now;
      this.memoryHigh = this.rss() > this.limits.maxMemoryBytes;
    }
    return this.memoryHigh;
  }
}
