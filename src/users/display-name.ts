/**
 * The one rule for display names, whether they come from a token or from an admin. A name is shown to every
 * viewer of the board, so it must not be able to pass for someone else's or to rearrange the text around it:
 * - NFC normalisation, so the same letters are stored as the same code points;
 * - whitespace runs collapse to one space and the ends are trimmed ("Ada  Lovelace" is "Ada Lovelace");
 * - control, format (bidi overrides and isolates, zero-width spaces and joiners, the BOM, soft hyphens),
 *   private-use, unassigned, surrogate and line/paragraph separator characters are refused outright.
 * Names stay non-unique (sites often have many "Alex"): the API always carries the user id beside the name,
 * and the live page shows the id next to any name that appears twice on screen (see public/assets/app.js).
 */
export const DISPLAY_NAME_MAX_LENGTH = 100;

const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}]/u;

export type DisplayNameCheck =
  { ok: true; name: string } | { ok: false; reason: 'empty' | 'too_long' | 'forbidden_characters' };

export function checkDisplayName(raw: string): DisplayNameCheck {
  const nfc = raw.normalize('NFC');
  if (FORBIDDEN.test(nfc)) return { ok: false, reason: 'forbidden_characters' };
  const name = nfc.replace(/\s+/gu, ' ').trim(); // what is left of \s are ordinary (Zs) spaces
  if (name.length === 0) return { ok: false, reason: 'empty' };
  if ([...name].length > DISPLAY_NAME_MAX_LENGTH) return { ok: false, reason: 'too_long' };
  return { ok: true, name };
}

/** For token names: the checked name, cut to the maximum length, or undefined when it is unusable. */
export function normalizeDisplayName(raw: string): string | undefined {
  const check = checkDisplayName(raw);
  if (check.ok) return check.name;
  if (check.reason !== 'too_long') return undefined;
  return [...raw.normalize('NFC').replace(/\s+/gu, ' ').trim()]
    .slice(0, DISPLAY_NAME_MAX_LENGTH)
    .join('')
    .trim();
}

export const DISPLAY_NAME_PROBLEMS: Record<Exclude<DisplayNameCheck, { ok: true }>['reason'], string> = {
  empty: 'must not be empty',
  too_long: `must be at most ${DISPLAY_NAME_MAX_LENGTH} characters`,
  forbidden_characters: 'must not contain control, bidirectional-override or zero-width characters',
};
