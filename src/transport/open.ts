// Picks the transport for a remote URL, as Git does from the URL's form
// (git-clone "GIT URLS"): local paths and file:// run the services locally,
// ssh:// and scp-like addresses go through OpenSSH, http(s):// is smart HTTP.
// Transports are loaded on first use: the HTTP client alone costs ~170 ms of
// start-up, which a mirror between local paths should not pay.
import type { FileTransportOptions } from './file.js';
import type { HttpTransportOptions } from './http.js';
import type { SshTransportOptions } from './ssh.js';
import type { Transport } from './types.js';
import { parseGitUrl } from './url.js';

export interface TransportOptions {
  file?: FileTransportOptions;
  ssh?: SshTransportOptions;
  http?: HttpTransportOptions;
}

export async function openTransport(input: string, options: TransportOptions = {}): Promise<Transport> {
  const url = parseGitUrl(input);
  switch (url.scheme) {
    case 'file': {
      const { FileTransport } = await import('./file.js');
      return new FileTransport(url.path, options.file);
    }
    case 'ssh': {
      const { SshTransport } = await import('./ssh.js');
      return new SshTransport(url, options.ssh);
    }
    case 'http':
    case 'https': {
      const { HttpTransport } = await import('./http.js');
      return new HttpTransport(url.url, options.http);
    }
  }
}
