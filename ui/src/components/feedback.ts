// Run an action with feedback: a success toast, or the API problem's title and detail.
import type { MessageInstance } from "antd/es/message/interface";
import { problemOf } from "../api/problem";

export async function attempt<T>(
  message: MessageInstance,
  action: () => Promise<T>,
  success?: string,
): Promise<T | undefined> {
  try {
    const result = await action();
    if (success) void message.success(success);
    return result;
  } catch (error) {
    const problem = problemOf(error);
    void message.error(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title, 6);
    return undefined;
  }
}
