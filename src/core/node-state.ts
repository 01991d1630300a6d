/** Whether the node serves: loading until the model is ready, online while serving, offline once stopped. */
export type NodeState = "loading" | "online" | "offline";
