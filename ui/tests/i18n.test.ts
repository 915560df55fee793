import { describe, expect, it } from "vitest";
import { en } from "../src/i18n/en";
import { zh } from "../src/i18n/zh";

// translate() reads the session store's language only through its arguments.
import { translate } from "../src/i18n";

describe("dictionaries", () => {
  it("translate every English key into Chinese with the same placeholders", () => {
    for (const key of Object.keys(en) as (keyof typeof en)[]) {
      const holes = (text: string) => (text.match(/\{\w+\}/g) ?? []).sort();
      expect(zh[key], key).toBeTruthy();
      expect(holes(zh[key]), key).toEqual(holes(en[key]));
    }
  });

  it("fills placeholders", () => {
    expect(translate("en", "designer.saved", { version: 3 })).toBe("Saved as version 3");
    expect(translate("zh-CN", "designer.saved", { version: 3 })).toBe("已保存为版本 3");
  });
});
