/** MQTT topic filter matching (`+` one level, `#` the rest), for configured allow-lists. */
export function topicMatches(filter: string, topic: string): boolean {
  const filterLevels = filter.split("/");
  const topicLevels = topic.split("/");
  for (let i = 0; i < filterLevels.length; i++) {
    const level = filterLevels[i];
    if (level === "#") return true;
    if (i >= topicLevels.length) return false;
    if (level !== "+" && level !== topicLevels[i]) return false;
  }
  return filterLevels.length === topicLevels.length;
}

/** A well-formed filter: `#` only as the last level, wildcards only as whole levels. */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0 || filter.includes("\0")) return false;
  const levels = filter.split("/");
  return levels.every((level, i) => {
    if (level === "#") return i === levels.length - 1;
    if (level === "+") return true;
    return !level.includes("#") && !level.includes("+");
  });
}
