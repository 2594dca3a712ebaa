// The transport contract: how packferry talks to a remote Git service
// (git-upload-pack or git-receive-pack) over any carrier — a local process
// (file), OpenSSH (ssh), or smart HTTP (gitprotocol-http). Transports move
// bytes only; the protocol layer gives them meaning.
//
// Two shapes of conversation, as in Git (gitprotocol-http "Smart Clients"):
// - stateful (file, ssh): one connection; each request is written to the
//   service's stdin and its response read from the same stdout, so every
//   `request` returns the same PktLineReader, continuing where it stopped;
// - stateless (HTTP): the advertisement comes from GET info/refs, and each
//   request is a separate POST whose response is a new stream.
import type { AdvertisedRef } from '../protocol/advertisement.js';
import type { PktLineReader } from '../protocol/pkt-line-reader.js';

export type GitServiceName = 'git-upload-pack' | 'git-receive-pack';

export interface OpenServiceOptions {
  /**
   * The protocol version to ask for: sent as GIT_PROTOCOL=version=N (file,
   * ssh) or the Git-Protocol header (HTTP). The server may answer with an
   * older version; the caller reads which from the advertisement.
   */
  protocolVersion: 0 | 1 | 2;
  signal?: AbortSignal;
}

export interface RequestOptions {
  /**
   * Stateful transports: close the service's stdin after this request (the
   * last request of the conversation, e.g. a push).
   */
  end?: boolean;
  /** HTTP: may this request be retried if it fails before any response byte arrives? (fetch: yes, push: no) */
  idempotent?: boolean;
  signal?: AbortSignal;
}

export interface ServiceSession {
  /** True for HTTP: each request is independent, so protocol v0 negotiation must resend its state. */
  readonly stateless: boolean;
  /**
   * Reads what the service says first: a v0/v1 ref advertisement or a v2
   * capability advertisement. For HTTP, the "# service=..." line and its
   * flush are already consumed (and tolerated when a server omits them).
   */
  readonly advertisement: PktLineReader;
  /**
   * Sends a request body and returns the reader for its response. For
   * stateful transports this is `advertisement` itself, continuing.
   */
  request(body: Uint8Array | AsyncIterable<Uint8Array>, options?: RequestOptions): Promise<PktLineReader>;
  /**
   * Ends the conversation: closes stdin, waits for the process (or cancels
   * outstanding HTTP bodies). Rejects with ERR_REMOTE (and the service's
   * stderr in the message) if the service failed. Safe to call twice.
   */
  close(): Promise<void>;
}

export interface Transport {
  /** Scheme-free description for messages, with any credentials removed. */
  readonly displayUrl: string;
  open(service: GitServiceName, options: OpenServiceOptions): Promise<ServiceSession>;
  /**
   * The refs, read without starting a service, where the transport can do so
   * cheaply and exactly (local repositories); undefined otherwise. A caller
   * still talks to the real service before changing anything.
   */
  peekRefs?(): Promise<{ refs: AdvertisedRef[]; head?: string } | undefined>;
}
