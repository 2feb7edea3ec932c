/**
 * The devnode's chain: a linear list of blocks, every one finalized as soon as it is made (instant
 * finality, like a `--dev` node with manual seal). Transfers are queued and land in the next block's
 * System.Events; a block's hash is blake2-256 of its SCALE-encoded header, so parent links are real.
 */
import type { Header } from '@polkadot/types/interfaces';
import { blake2AsHex, decodeAddress } from '@polkadot/util-crypto';
import { stringToU8a, u8aConcat, hexToU8a, bnToU8a } from '@polkadot/util';
import { type EventSpec, type Runtime } from './runtime';

export interface Block {
  number: number;
  hash: `0x${string}`;
  header: Header;
  /** The header as JSON-RPC carries it (number as hex, like Substrate). */
  headerJson: Record<string, unknown>;
  /** SCALE Vec<EventRecord> stored under System.Events in this block's state. */
  events: `0x${string}`;
}

export interface QueuedTransfer { from: string; to: string; amount: bigint }

const EMPTY_TRIE_ROOT = blake2AsHex(Uint8Array.of(0));

export class DevChain {
  readonly blocks: Block[] = [];
  private queue: QueuedTransfer[] = [];

  constructor(private readonly rt: Runtime) {
    this.blocks.push(this.make(0, `0x${'00'.repeat(32)}`, []));
  }

  get head(): Block {
    return this.blocks[this.blocks.length - 1]!;
  }

  get genesis(): Block {
    return this.blocks[0]!;
  }

  byHash(hash: string): Block | undefined {
    const h = hash.toLowerCase();
    return this.blocks.find((b) => b.hash === h);
  }

  queueTransfer(t: QueuedTransfer): void {
    if (t.amount < 0n || t.amount >= 1n << 128n) throw new RangeError('amount must fit u128');
    // Checked now, so a bad address fails the caller instead of the next block.
    decodeAddress(t.from);
    decodeAddress(t.to);
    this.queue.push(t);
  }

  /** Seals the queued transfers into a new block, which is final at once. */
  produce(): Block {
    const records: EventSpec[] = [];
    // Each transfer is its own extrinsic (index 0 is the timestamp inherent on a real chain), and is
    // followed by ExtrinsicSuccess, so event indexes differ from transfer indexes as on a real chain.
    this.queue.forEach((t, i) => {
      const phase = { ApplyExtrinsic: i + 1 };
      records.push({ phase, pallet: 'Balances', name: 'Transfer', fields: [t.from, t.to, t.amount] });
      records.push({ phase, pallet: 'System', name: 'ExtrinsicSuccess', fields: [{}] });
    });
    this.queue = [];
    const block = this.make(this.head.number + 1, this.head.hash, records);
    this.blocks.push(block);
    return block;
  }

  private make(number: number, parentHash: `0x${string}`, records: EventSpec[]): Block {
    const events = this.rt.encodeEvents(records);
    // Not a real trie root, but it commits to this block's state so different blocks hash differently.
    const stateRoot = blake2AsHex(u8aConcat(stringToU8a('imgc-dev-state'), bnToU8a(number, { bitLength: 32 }), hexToU8a(events)));
    const header = this.rt.header({ parentHash, number, stateRoot, extrinsicsRoot: EMPTY_TRIE_ROOT });
    const hash = header.hash.toHex();
    const headerJson = {
      parentHash,
      number: `0x${number.toString(16)}`,
      stateRoot,
      extrinsicsRoot: EMPTY_TRIE_ROOT,
      digest: { logs: [] },
    };
    return { number, hash, header, headerJson, events };
  }
}
