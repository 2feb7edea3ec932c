/**
 * The bounds of the key-package directory (`cat: "keys"`), in one place for the three that hold to
 * them: the edge's schema (schema.ts), the actor that keeps the directory
 * (src/actors/key-packages.ts) and the SDK that fills it and claims from it (src/client/e2e).
 */
const claimAccounts = 50;
const devicesMax = 8;

export const KeyWire = {
  /** The longest package, in base64 characters. */
  packageChars: 2048,
  /** Packages in one `publish`. */
  publishMax: 16,
  /** One-time packages a device keeps (the oldest dropped past it). */
  perDevice: 16,
  /** Devices with packages per account. */
  devicesMax,
  /** Accounts in one `claim`. */
  claimAccounts,
  /** Devices one `claim` may leave out: every device of every account it names. */
  claimExcept: claimAccounts * devicesMax,
} as const;
