// Named limits on untrusted input. Every decoder checks against one of these,
// so hostile input fails with ERR_LIMIT_EXCEEDED instead of exhausting memory.

export interface Limits {
  /** Largest object (inflated) that may be held in memory at once. */
  maxObjectSize: number;
  /** Largest result a delta may declare or produce. */
  maxDeltaResultSize: number;
  /** Longest delta chain followed before giving up (Git's default depth is 50; packs in the wild reach ~4000). */
  maxDeltaChainDepth: number;
  /** Most objects a single pack may declare. */
  maxPackObjects: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxObjectSize: 2 ** 32, // 4 GiB: Git's own practical ceiling for a single object in memory
  maxDeltaResultSize: 2 ** 32,
  maxDeltaChainDepth: 10_000,
  maxPackObjects: 2 ** 32 - 1, // the pack header's object count is a uint32
});

export function withLimits(overrides: Partial<Limits> | undefined): Limits {
  return { ...DEFAULT_LIMITS, ...overrides };
}
