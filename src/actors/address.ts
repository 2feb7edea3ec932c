/** Actor addresses: what a message names to reach an actor, wherever it lives. */
export const groupAddress = (id: string): string => `group:${id}`;

/** The verification actor's address: one book of registrations for the whole service. */
export const VERIFY_ADDRESS = 'verify:book';
