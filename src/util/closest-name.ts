import { closest, distance } from "fastest-levenshtein";

/** The candidate a mistyped name most likely meant, or null when none is close (for "did you mean"). */
export function closestName(word: string, candidates: readonly string[]): string | null {
  if (candidates.length === 0) return null;
  const lower = word.toLowerCase();
  const best = closest(
    lower,
    candidates.map((candidate) => candidate.toLowerCase()),
  );
  const index = candidates.findIndex((candidate) => candidate.toLowerCase() === best);
  // A prefix (--json for --js) or a few typos; anything further off would be a guess.
  const allowed = Math.max(2, Math.floor(word.length / 3));
  const near = distance(lower, best) <= allowed || best.startsWith(lower) || best.endsWith(lower);
  return near && index >= 0 ? candidates[index]! : null;
}

/** " (did you mean X?)" or "". */
export function didYouMean(
  word: string,
  candidates: readonly string[],
  format = (name: string) => name,
): string {
  const name = closestName(word, candidates);
  return name === null ? "" : ` (did you mean ${format(name)}?)`;
}
