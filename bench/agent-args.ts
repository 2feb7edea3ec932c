/**
 * The arguments the driver hands a load-generator agent over IPC, one interface per operation; the
 * driver (bench/driver.ts) and the agent (bench/loadgen.ts) both take them from here.
 */

export interface Common {
  url: string;
  serverPid: number;
  label: string;
}

export interface FlowArgs extends Common {
  /** `pairs`: one-to-one between pairs; `fanout`: groups of `group` members. */
  mode: 'pairs' | 'fanout';
  pairs: number;
  group: number;
  groups: number;
  duration: number;
  warmup: number;
  /** Closed loop: messages in flight per sender (pairs) or per group (fanout). */
  window: number;
  /** Open loop when > 0: offered messages/s in total, on a timetable. */
  rate: number;
  /**
   * Fan-out with half the members away: only members at even positions of each group sign in
   * (the creator, position 0, among them); the others are members that never connect.
   */
  away?: boolean;
  /** The server's data directory: its growth per message is reported when given. */
  dataDir?: string;
  /**
   * Fan-out with presence churn: one extra member per group (never counted as a recipient) signs
   * in and out every `churnEveryMs` (an online and an offline change); with `presence` every member
   * subscribes to the presence of the rest of its group; members send `typing` to their group,
   * `typingPerS` per member on average (0: none). Off and on differ only in `presence` and typing.
   */
  ephemeral?: { presence: boolean; typingPerS: number; churnEveryMs: number };
  /** Against the nodes of a cluster instead of one server (`url` is then the first node's). */
  cluster?: ClusterTarget;
  /**
   * Text added to every message's `msg` object after its `"b":[…]` (starting with a comma): e.g.
   * the fields of an end-to-end envelope, so that frames have an encrypted message's size.
   */
  pad?: string;
}

/**
 * The nodes of a cluster: account i signs in on `urls[nodeOf(i)]` (see `nodeOf`), CPU and RSS are
 * summed over `pids`, and nats-server's CPU and the growth of the JetStream streams over the measured
 * window are reported when its pid and monitoring URL (`http://host:port`, nats-server -m) are given.
 */
export interface ClusterTarget {
  urls: string[];
  pids: number[];
  natsPid?: number;
  natsMonitor?: string;
  /**
   * The ledger's stream (`IMGC_<cluster name>`), and any stream named after it with `_…` (a ledger kept
   * in several streams); the other streams of the account are the key-value buckets and the like.
   */
  stream?: string;
}

export interface SigninArgs extends Common {
  count: number;
  concurrency: number;
  signed: boolean;
  /**
   * Then close every client and reconnect them all at once (concurrency = count) with the resume
   * token of their Welcome (none from the floor: a plain reconnect), and report that rate too.
   */
  resume?: boolean;
}

export interface OfflineArgs extends Common {
  recipients: number;
  perRecipient: number;
  senders: number;
  concurrency: number;
}

export interface CapConnectArgs {
  url: string;
  label: string;
  offset: number;
  count: number;
  concurrency: number;
  deadlineMs: number;
  /** Several servers (the nodes of a cluster): client `offset + i` connects to `urls[(offset + i) % urls.length]`. */
  urls?: string[];
  /** Source address of this agent's sockets (127.0.0.x: its own ephemeral ports). */
  localAddress?: string;
}
