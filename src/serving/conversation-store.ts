import type { ChatMessage } from "../core/generation.js";

export interface ConversationLimits {
  /** Conversations kept; the least recently used one is forgotten first. */
  maxCount: number;
  /** A conversation untouched this long is forgotten. */
  maxAgeMs: number;
  /** Messages kept per conversation; the oldest turns go first. */
  maxMessages: number;
  /** Characters kept per conversation (a cheap, tokenizer-free bound on its prompt size). */
  maxChars: number;
}

interface Conversation {
  messages: ChatMessage[];
  lastUsed: number;
}

/** Chat turns kept on the node per conversation_id, bounded in count, age and size. */
export class ConversationStore {
  private readonly limits: ConversationLimits;
  private readonly now: () => number;
  /** Map order is recency order: a touched conversation is moved to the end. */
  private readonly conversations = new Map<string, Conversation>();

  constructor(limits: ConversationLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.now = now;
  }

  get size(): number {
    return this.conversations.size;
  }

  /** The earlier turns of a conversation (user and assistant messages), oldest first. */
  history(id: string): ChatMessage[] {
    this.forgetExpired();
    return [...(this.conversations.get(id)?.messages ?? [])];
  }

  /** Adds a finished exchange: the request's user messages and the answer. */
  append(id: string, turns: ChatMessage[]): void {
    this.forgetExpired();
    const conversation = this.conversations.get(id) ?? { messages: [], lastUsed: 0 };
    this.conversations.delete(id);
    conversation.messages.push(...turns.filter((turn) => turn.role !== "system"));
    conversation.lastUsed = this.now();
    this.trim(conversation);
    this.conversations.set(id, conversation);
    while (this.conversations.size > this.limits.maxCount) {
      const oldest = this.conversations.keys().next().value as string;
      this.conversations.delete(oldest);
    }
  }

  /** Drops whole exchanges from the start until the limits hold; a kept history always starts with a user turn. */
  private trim(conversation: Conversation): void {
    const { maxMessages, maxChars } = this.limits;
    const chars = () => conversation.messages.reduce((sum, m) => sum + m.content.length, 0);
    while (
      conversation.messages.length > maxMessages ||
      (conversation.messages.length > 0 && chars() > maxChars)
    ) {
      conversation.messages.shift();
      while (conversation.messages.length > 0 && conversation.messages[0]!.role !== "user")
        conversation.messages.shift();
    }
  }

  private forgetExpired(): void {
    const cutoff = this.now() - this.limits.maxAgeMs;
    for (const [id, conversation] of this.conversations) {
      if (conversation.lastUsed >= cutoff) break;
      this.conversations.delete(id);
    }
  }
}
