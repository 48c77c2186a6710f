export async function benchUNet(log: (s: string) => void, _args: string[]): Promise<unknown> { log("UNet not built yet"); return null; }
