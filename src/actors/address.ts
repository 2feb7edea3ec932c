/** Actor addresses: what a message names to reach an actor, wherever it lives. */
export const groupAddress = (id: string): string => `group:${id}`;
