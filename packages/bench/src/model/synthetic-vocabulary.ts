/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export const UNKNOWN_TOKEN_ID = 0;
export const BOS_TOKEN_ID = 1;
export const EOS_TOKEN_ID = 2;

/** The chat template's role markers, control tokens so that the template text tokenizes them as one token each. */
export const CHAT_TEMPLATE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"] as const;

export interface SyntheticVocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
  /** Every id below this one is special (unknown, control or byte); normal text tokens start here. */
  firstNormalTokenId: number;
}

/** SentencePiece's word-boundary marker: "▁the" is " the". */
const SPACE = "\u2581";

const WORDS = [
  "the be to of and a in that have I it for not on with he as you do at this but his by from",
  "they we say her she or an will my one all would there their what so up out if about who",
  "get which go me when make can like time no just him know take people into year your good",
  "some could them see other than then now look only come its over think also back after use",
  "two how our work first well way even new want because any these give day most us is are",
  "was were hello light lights turn off kitchen room temperature weather today tomorrow",
  "please thanks yes Hello The What How Please",
]
  .join(" ")
  .split(" ");

const SUBWORDS = "ing ed er es ly tion th he in an re on at en nd".split(" ");

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS = "0123456789";
const PUNCTUATION = ".,!?;:'\"-()[]{}/\\@#$%&*+=<>_~|`^";

/**
 * A llama (SentencePiece) vocabulary that tokenizes any text: unknown/BOS/EOS, the 256 byte
 * fallback tokens, the chat template markers, then normal pieces. Words come with all their
 * prefixes so that SentencePiece's pairwise merges can reach the whole word.
 * With `size`, made-up pieces ("▁w123") fill the vocabulary up to exactly that many tokens.
 */
export function buildSyntheticVocabulary(size?: number): SyntheticVocabulary {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let byte = 0; byte < 256; byte++) {
    tokens.push(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TOKEN_TYPE.byte);
  }
  for (const marker of CHAT_TEMPLATE_TOKENS) {
    tokens.push(marker);
    types.push(TOKEN_TYPE.control);
  }
  const firstNormalTokenId = tokens.length;
  const normal = new Set<string>([SPACE, ...LETTERS, ...DIGITS, ...PUNCTUATION]);
  for (const piece of [...LETTERS, ...DIGITS, ...PUNCTUATION]) normal.add(SPACE + piece);
  for (const word of [...WORDS.map((word) => SPACE + word), ...SUBWORDS]) {
    for (let end = 2; end <= word.length; end++) normal.add(word.slice(0, end));
  }
  if (size !== undefined && size < firstNormalTokenId + normal.size) {
    throw new Error(`a synthetic vocabulary needs at least ${firstNormalTokenId + normal.size} tokens`);
  }
  for (let filler = 0; size !== undefined && firstNormalTokenId + normal.size < size; filler++) {
    normal.add(`${SPACE}w${filler}`);
  }
  for (const piece of normal) {
    tokens.push(piece);
    types.push(TOKEN_TYPE.normal);
  }
  // SentencePiece merges the highest-scoring pair first; earlier pieces win, as in real vocabularies.
  const scores = tokens.map((_, id) => (id < firstNormalTokenId ? 0 : -(id - firstNormalTokenId)));
  return { tokens, scores, types, firstNormalTokenId };
}
