// Content-Type for the store's files in a bucket, so that Git's plain
// ("dumb") HTTP client and browsers get what a web server would send for a
// bare repository (the types `git http-backend` uses; see
// gitprotocol-http(5), "Dumb Clients").

const TEXT = 'text/plain; charset=utf-8';

/** The Content-Type for a store key (a path relative to the repository's root). */
export function contentTypeFor(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1);
  if (key.endsWith('.pack')) return 'application/x-git-packed-objects';
  if (key.endsWith('.idx')) return 'application/x-git-packed-objects-toc';
  if (key.endsWith('.json')) return 'application/json';
  if (
    key === 'HEAD' ||
    key === 'packed-refs' ||
    key === 'info/refs' ||
    key === 'description' ||
    key === 'config' ||
    key.startsWith('refs/') ||
    key.startsWith('objects/info/') ||
    name.endsWith('.txt')
  ) {
    return TEXT;
  }
  if (/^objects\/[0-9a-f]{2}\/[0-9a-f]{38}([0-9a-f]{24})?$/.test(key)) return 'application/x-git-loose-object';
  return 'application/octet-stream';
}
