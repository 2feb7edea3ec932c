/**
 * The development node's runtime: the real metadata (v14) of substrate-contracts-node that
 * @polkadot/types-support ships, and the SCALE encoders the node needs to serve data an unmodified
 * ApiPromise accepts. That runtime is small (System, Balances, Contracts, …: 56 kB of metadata against
 * 600 kB for the full Substrate node), so a client decodes it in a fraction of the time, which keeps
 * reconnect tests fast; its System and Balances pallets are the stock FRAME ones.
 * Nothing here is a stand-in format: headers, events and storage values are encoded by
 * @polkadot/types against that metadata, exactly as a node built from that runtime would encode them.
 */
import { Metadata, TypeRegistry } from '@polkadot/types';
import type { Header } from '@polkadot/types/interfaces';
import { compactToU8a, u8aConcat, u8aToHex, hexToU8a } from '@polkadot/util';
import { xxhashAsU8a } from '@polkadot/util-crypto';
import substrateMetadataHex, { version as substrateVersion } from '@polkadot/types-support/metadata/static-substrate-contracts-node';

/** Chain properties the node announces; the watcher and the service read decimals and ss58 from here. */
export const DEV_PROPERTIES = { ss58Format: 42, tokenDecimals: 12, tokenSymbol: 'UNIT' } as const;

/** One event record as the devnode produces it: a pallet event with its field values in order. */
export interface EventSpec {
  phase: { ApplyExtrinsic: number } | 'Finalization' | 'Initialization';
  pallet: string;
  name: string;
  fields: unknown[];
}

export interface Runtime {
  registry: TypeRegistry;
  metadataHex: `0x${string}`;
  /** The runtime version exactly as state_getRuntimeVersion returns it. */
  version: Record<string, unknown>;
  /** twox128("System") ++ twox128("Events"). */
  eventsKey: `0x${string}`;
  /** Vec<EventRecord> as stored under System.Events. */
  encodeEvents(records: EventSpec[]): `0x${string}`;
  header(fields: { parentHash: string; number: number; stateRoot: string; extrinsicsRoot: string }): Header;
  /** Answers of the Metadata runtime api, so the api takes its preferred path and warns about nothing. */
  metadataVersions(): `0x${string}`;
  metadataAtVersion(v: number): `0x${string}`;
}

let cached: Runtime | undefined;

/** Decoding the metadata takes a few hundred ms, so every DevNode in a process shares one runtime. */
export function devRuntime(): Runtime {
  cached ??= build();
  return cached;
}

function build(): Runtime {
  const registry = new TypeRegistry();
  const metadata = new Metadata(registry, substrateMetadataHex);
  registry.setMetadata(metadata);
  const metaBytes = hexToU8a(substrateMetadataHex);
  const latest = metadata.asLatest;

  const pallet = (name: string) => {
    const p = latest.pallets.find((x) => x.name.eq(name));
    if (!p) throw new Error(`pallet ${name} not in metadata`);
    return p;
  };

  const eventBytes = (palletName: string, name: string, values: unknown[]): Uint8Array => {
    const p = pallet(palletName);
    const variants = registry.lookup.getSiType(p.events.unwrap().type).def.asVariant.variants;
    const v = variants.find((x) => x.name.eq(name));
    if (!v) throw new Error(`event ${palletName}.${name} not in metadata`);
    if (v.fields.length !== values.length) throw new Error(`event ${palletName}.${name} takes ${v.fields.length} fields`);
    const data = v.fields.map((f, i) => registry.createType(registry.createLookupType(f.type), values[i]).toU8a());
    return u8aConcat(Uint8Array.of(p.index.toNumber(), v.index.toNumber()), ...data);
  };

  const eventsEntry = pallet('System').storage.unwrap().items.find((i) => i.name.eq('Events'));
  if (!eventsEntry) throw new Error('System.Events not in metadata');
  const eventsType = registry.createLookupType(eventsEntry.type.asPlain);

  return {
    registry,
    metadataHex: substrateMetadataHex as `0x${string}`,
    version: { ...substrateVersion, specName: 'imgc-dev', implName: 'imgc-devnode' },
    eventsKey: u8aToHex(u8aConcat(xxhashAsU8a('System', 128), xxhashAsU8a('Events', 128))),
    encodeEvents: (records) =>
      registry.createType(eventsType, records.map((r) => ({
        phase: r.phase,
        event: eventBytes(r.pallet, r.name, r.fields),
        topics: [],
      }))).toHex(),
    header: (f) => registry.createType('Header', { ...f, digest: { logs: [] } }),
    metadataVersions: () => registry.createType('Vec<u32>', [metadata.version]).toHex(),
    metadataAtVersion: (v) =>
      v === metadata.version
        ? u8aToHex(u8aConcat(Uint8Array.of(1), compactToU8a(metaBytes.length), metaBytes))
        : '0x00',
  };
}
