/** `imgc/client` for browsers: the same SDK on the native WebSocket (no Node modules). */
export * from './core.js';
export * from './errors.js';
export * from './signer.js';
export * from './types.js';
