import {
  ApartmentOutlined,
  ApiOutlined,
  BranchesOutlined,
  ClockCircleOutlined,
  CodeOutlined,
  AppstoreOutlined,
  MessageOutlined,
  OrderedListOutlined,
  PlayCircleOutlined,
  ProfileOutlined,
  RetweetOutlined,
  RobotOutlined,
  StopOutlined,
  ToolOutlined,
  UserOutlined,
} from "@ant-design/icons";
import type { ComponentType } from "react";
import type { IconName } from "./registry";

export const ICONS: Record<IconName, ComponentType> = {
  play: PlayCircleOutlined,
  stop: StopOutlined,
  code: CodeOutlined,
  branch: BranchesOutlined,
  api: ApiOutlined,
  clock: ClockCircleOutlined,
  user: UserOutlined,
  list: OrderedListOutlined,
  loop: RetweetOutlined,
  cluster: ApartmentOutlined,
  robot: RobotOutlined,
  message: MessageOutlined,
  tool: ToolOutlined,
  task: ProfileOutlined,
  box: AppstoreOutlined,
};

export function KindIcon({ name }: { name: IconName }) {
  const Icon = ICONS[name];
  return <Icon />;
}
