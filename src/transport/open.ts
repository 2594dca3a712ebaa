// Picks the transport for a remote URL, as Git does from the URL's form
// (git-clone "GIT URLS"): local paths and file:// run the services locally,
// ssh:// and scp-like addresses go through OpenSSH, http(s):// is smart HTTP.
import { FileTransport, type FileTransportOptions } from './file.js';
import { HttpTransport, type HttpTransportOptions } from './http.js';
import { SshTransport, type SshTransportOptions } from './ssh.js';
import type { Transport } from './types.js';
import { parseGitUrl } from './url.js';

export interface TransportOptions {
  file?: FileTransportOptions;
  ssh?: SshTransportOptions;
  http?: HttpTransportOptions;
}

export function openTransport(input: string, options: TransportOptions = {}): Transport {
  const url = parseGitUrl(input);
  switch (url.scheme) {
    case 'file':
      return new FileTransport(url.path, options.file);
    case 'ssh':
      return new SshTransport(url, options.ssh);
    case 'http':
    case 'https':
      return new HttpTransport(url.url, options.http);
  }
}
