/**
 * The route plugins the server registers, in order. A new group of routes (e.g. the playground's
 * static files) is one module exporting a RoutePlugin, added to this list.
 */
import type { RoutePlugin } from '../context.ts';
import { healthRoutes } from './health.ts';
import { chatRoutes } from './chat.ts';
import { nativeRoutes } from './native.ts';
import { playgroundRoutes } from './playground.ts';

export const ROUTES: RoutePlugin[] = [healthRoutes, chatRoutes, nativeRoutes, playgroundRoutes];
