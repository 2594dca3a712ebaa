// The protocol layer: pkt-line framing and side-band (pure; no I/O beyond
// consuming the byte streams it is handed). See each module's header for the
// section of gitprotocol-common / gitprotocol-pack / gitprotocol-v2 it implements.
export * from './pkt-line.js';
export * from './pkt-line-reader.js';
export * from './side-band.js';
export * from './capabilities.js';
export * from './advertisement.js';
export * from './upload-pack.js';
export * from './receive-pack.js';
