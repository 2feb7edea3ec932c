/**
 * A client request after JSON parsing; the edge validates it against its (cat, act) schema. Its own
 * module, so the schema (which checks it) and the frame builders (which echo it) need not import each other.
 */
export interface Request {
  cat?: string;
  act: string;
  spam?: string;
  callback?: string;
  [param: string]: unknown;
}
